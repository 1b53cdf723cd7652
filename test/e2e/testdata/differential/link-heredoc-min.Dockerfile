# mode=min
# The heredoc COPY --link case exported with mode=min: only the final
# stage's chain is in the cache.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base
COPY --link <<EOT /etc/greeting
hello from a heredoc
EOT
RUN head -c 100 /dev/urandom > /rand1
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base
COPY --link <<EOT /etc/greeting
hello from a heredoc
EOT
RUN head -c 100 /dev/urandom > /rand1
RUN cat /etc/greeting > /copied
