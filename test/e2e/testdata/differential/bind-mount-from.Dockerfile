# RUN --mount=type=bind,from=<stage>: the mounted stage is not a layer of the result.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS gen
RUN head -c 256 /dev/urandom > /rand_src && echo constant > /const
FROM base
RUN --mount=type=bind,from=gen,target=/src cp /src/rand_src /rand_copy && cp /src/const /const_copy
RUN head -c 64 /dev/urandom > /rand_own
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS gen
RUN head -c 256 /dev/urandom > /rand_src && echo constant > /const
FROM base
RUN --mount=type=bind,from=gen,target=/src cp /src/rand_src /rand_copy && cp /src/const /const_copy
RUN head -c 64 /dev/urandom > /rand_own
RUN --mount=type=bind,from=gen,target=/src md5sum /src/rand_src > /rand_sum
