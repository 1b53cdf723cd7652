package grpcbuffers

import "testing"

// A message of one fsutil chunk (32 KiB plus header) must not get gRPC's
// default 1 MiB buffer, which is zeroed on every reuse.
func TestBuffersStayWithinTwiceTheirSize(t *testing.T) {
	pool, err := NewPool()
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 255, 256, 257, 4 << 10, 32<<10 + 17, 100 << 10, 1<<20 + 1, 4 << 20} {
		for range 2 { // a fresh buffer, then a reused one
			buf := pool.Get(size)
			if len(*buf) != size {
				t.Fatalf("Get(%d): len %d", size, len(*buf))
			}
			if c := cap(*buf); size >= 256 && c > 2*size {
				t.Errorf("Get(%d): capacity %d, more than twice the size", size, c)
			}
			for i, b := range *buf {
				if b != 0 {
					t.Fatalf("Get(%d): byte %d is %d, want a zeroed buffer", size, i, b)
				}
				(*buf)[i] = 0xff // dirty it for the reuse
			}
			pool.Put(buf)
		}
	}
}
