# A whole stage copied with --link (its root, busybox included) into a
# scratch stage, then built on.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 100 /dev/urandom > /rand1 && head -c 100 /dev/urandom > /rand2
FROM scratch
COPY --link --from=build / /
RUN head -c 100 /dev/urandom > /rand_top
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 100 /dev/urandom > /rand1 && head -c 100 /dev/urandom > /rand2
RUN echo extra > /extra
FROM scratch
COPY --link --from=build / /
RUN head -c 100 /dev/urandom > /rand_top
