# The changed Dockerfile runs a step right on top of a COPY --link of a
# heredoc: the merged result from the cache must hold the base under it.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN head -c 100 /dev/urandom > /rand_base
FROM base
COPY --link <<EOT /etc/greeting
hello from a heredoc
EOT
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN head -c 100 /dev/urandom > /rand_base
FROM base
COPY --link <<EOT /etc/greeting
hello from a heredoc
EOT
RUN cat /etc/greeting /rand_base | md5sum > /randsum
