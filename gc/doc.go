// Package gc is prune's mark and sweep over a `type=s3` cache bucket: a
// Plan (which caches to drop, which blobs to delete) that a dry run prints
// and a real run executes.
//
// Prune and exports may run at once. The protocol that keeps a blob an
// export reuses from being deleted under it (docs/operations.md, "Prune
// while builds run"):
//
//   - prune deletes only blobs no manifest names and last modified more
//     than the grace (default 1h) before the plan;
//   - for each batch of deletions it (1) re-reads the candidates' last
//     modified times (an export that touched or re-uploaded one made it
//     young), (2) re-lists the manifests and marks the blobs of any new or
//     rewritten one, then (3) deletes what is still garbage; afterwards it
//     re-lists once more and reports any manifest naming a blob it deleted;
//   - the exporter (backend/exporter.go), after writing its manifest,
//     re-checks every blob it touched and every other blob the manifest
//     names, reused or uploaded, that was last modified (or whose upload
//     started) more than 30 minutes before, and uploads again any that is
//     gone.
//
// The phases live in their own files: plan.go marks and chooses, shards.go
// groups the sweep for its re-check, sweep.go executes a plan.
package gc
