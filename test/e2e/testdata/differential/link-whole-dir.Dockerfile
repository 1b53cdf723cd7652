# COPY --link of a whole directory onto the base, with steps on top of the merge.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN mkdir -p /out/sub && head -c 300 /dev/urandom > /out/rand_a
RUN head -c 300 /dev/urandom > /out/sub/rand_b && echo fixed > /out/sub/fixed
FROM base
COPY --link --from=build /out/ /out/
RUN cat /out/rand_a /out/sub/rand_b | md5sum > /randsum
RUN head -c 100 /dev/urandom > /rand_top
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN mkdir -p /out/sub && head -c 300 /dev/urandom > /out/rand_a
RUN head -c 300 /dev/urandom > /out/sub/rand_b && echo fixed > /out/sub/fixed
RUN head -c 300 /dev/urandom > /out/rand_c
FROM base
COPY --link --from=build /out/ /out/
RUN cat /out/rand_a /out/sub/rand_b | md5sum > /randsum
RUN head -c 100 /dev/urandom > /rand_top
