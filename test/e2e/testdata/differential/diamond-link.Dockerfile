# A diamond: two stages from one base, the final stage built on one of them
# with a COPY --link from the other, then a step on top.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN head -c 80 /dev/urandom > /rand_base
FROM base AS left
RUN head -c 80 /dev/urandom > /rand_left
FROM base AS right
RUN head -c 80 /dev/urandom > /rand_right
FROM left
COPY --link --from=right /rand_right /from_right/
RUN cat /rand_base /rand_left /from_right/rand_right | md5sum > /randsum
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN head -c 80 /dev/urandom > /rand_base
FROM base AS left
RUN head -c 80 /dev/urandom > /rand_left
FROM base AS right
RUN head -c 80 /dev/urandom > /rand_right
FROM left
COPY --link --from=right /rand_right /from_right/
RUN cat /rand_base /rand_left /from_right/rand_right | md5sum > /randsum
RUN head -c 80 /dev/urandom > /rand_more
