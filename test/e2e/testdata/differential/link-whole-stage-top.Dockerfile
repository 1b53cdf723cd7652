# A whole stage copied with --link, and in the changed Dockerfile a step
# right on top of it.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 100 /dev/urandom > /rand1
RUN head -c 100 /dev/urandom > /rand2
FROM scratch
COPY --link --from=build / /
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 100 /dev/urandom > /rand1
RUN head -c 100 /dev/urandom > /rand2
FROM scratch
COPY --link --from=build / /
RUN cat /rand1 /rand2 | md5sum > /randsum
