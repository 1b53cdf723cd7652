# Several COPY --link merges from different stages onto the base, with a
# step on top reading all of them.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS a
RUN head -c 50 /dev/urandom > /rand_a
FROM base AS b
RUN head -c 50 /dev/urandom > /rand_b
FROM a AS c
RUN head -c 50 /dev/urandom > /rand_c
FROM base
COPY --link --from=a /rand_a /in/
COPY --link --from=b /rand_b /in/
COPY --link --from=c /rand_c /in/
RUN cat /in/* | md5sum > /randsum
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS a
RUN head -c 50 /dev/urandom > /rand_a
FROM base AS b
RUN head -c 50 /dev/urandom > /rand_b
FROM a AS c
RUN head -c 50 /dev/urandom > /rand_c
FROM base
COPY --link --from=b /rand_b /in/
COPY --link --from=a /rand_a /in/
COPY --link --from=c /rand_c /in/
RUN cat /in/* | md5sum > /randsum
