# COPY --link of a heredoc, then a RUN on top: the merged layer must come
# back with the base under it (a shell in /bin).
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base
COPY --link <<EOT /etc/greeting
hello from a heredoc
EOT
RUN head -c 100 /dev/urandom > /rand1
RUN <<EOT
set -e
cat /etc/greeting > /copied
head -c 100 /dev/urandom > /rand2
EOT
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base
COPY --link <<EOT /etc/greeting
hello from a heredoc
EOT
RUN head -c 100 /dev/urandom > /rand1
RUN <<EOT
set -e
cat /etc/greeting > /copied
head -c 100 /dev/urandom > /rand2
EOT
RUN cat /etc/greeting /copied | wc -c > /count
