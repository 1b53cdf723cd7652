# The same blob on different parents: identical COPY --link layers in two
# stages on different bases, merged into one result.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS one
RUN head -c 100 /dev/urandom > /rand_one
COPY --link busybox /shared/busybox
RUN head -c 100 /dev/urandom > /rand_one_top
FROM base AS two
RUN echo two > /two
COPY --link busybox /shared/busybox
RUN head -c 100 /dev/urandom > /rand_two_top
FROM scratch
COPY --link --from=one /rand_one /rand_one_top /
COPY --link --from=two /two /rand_two_top /
COPY --link --from=one /shared/ /shared/
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base AS one
RUN head -c 100 /dev/urandom > /rand_one
COPY --link busybox /shared/busybox
RUN head -c 100 /dev/urandom > /rand_one_top
FROM base AS two
RUN echo two > /two
COPY --link busybox /shared/busybox
RUN head -c 100 /dev/urandom > /rand_two_top
RUN echo more > /more
FROM scratch
COPY --link --from=one /rand_one /rand_one_top /
COPY --link --from=two /two /rand_two_top /more /
COPY --link --from=one /shared/ /shared/
