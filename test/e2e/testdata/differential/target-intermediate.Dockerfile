# target=build
# --target of an intermediate stage; the last stage is never built.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 128 /dev/urandom > /rand1
RUN head -c 128 /dev/urandom > /rand2
FROM scratch
COPY --from=build /rand1 /
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 128 /dev/urandom > /rand1
RUN head -c 128 /dev/urandom > /rand2
RUN head -c 128 /dev/urandom > /rand3
FROM scratch
COPY --from=build /rand1 /
