# Multi-stage with plain COPY --from; the change adds a step on the final stage.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 512 /dev/urandom > /rand1
RUN head -c 512 /dev/urandom > /rand2 && cat /rand1 /rand2 | md5sum > /randsum
FROM base
COPY --from=build /rand1 /rand2 /randsum /out/
RUN ls /out > /listing
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN head -c 512 /dev/urandom > /rand1
RUN head -c 512 /dev/urandom > /rand2 && cat /rand1 /rand2 | md5sum > /randsum
FROM base
COPY --from=build /rand1 /rand2 /randsum /out/
RUN ls /out > /listing
RUN head -c 64 /dev/urandom > /rand_after
