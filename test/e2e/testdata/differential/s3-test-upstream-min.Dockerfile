# mode=min
# The hack/s3_test scenario exported with mode=min.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN cat /dev/urandom | head -c 100 | sha256sum > rand_first
RUN cat /dev/urandom | head -c 100 | sha256sum > rand_second
FROM scratch
COPY --link --from=build /rand_first /
COPY --link --from=build /rand_second /
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS build
RUN cat /dev/urandom | head -c 100 | sha256sum > rand_first
RUN cat /dev/urandom | head -c 100 | sha256sum > rand_second
RUN cat /dev/urandom | head -c 100 | sha256sum > rand_third
FROM scratch
COPY --link --from=build /rand_first /
COPY --link --from=build /rand_second /
COPY --link --from=build /rand_third /
