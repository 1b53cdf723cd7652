# mode=min
# ENV and WORKDIR shape the steps after them.
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base
ENV GREETING=hello DIR=/work
WORKDIR /work/inner
RUN echo "$GREETING" > greeting && pwd > where
RUN head -c 64 /dev/urandom > rand_here
WORKDIR /other
RUN head -c 64 /dev/urandom > rand_other && echo "$DIR" > dir
# --- changed ---
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
FROM base
ENV GREETING=hello DIR=/work
WORKDIR /work/inner
RUN echo "$GREETING" > greeting && pwd > where
RUN head -c 64 /dev/urandom > rand_here
ENV EXTRA=1
WORKDIR /other
RUN head -c 64 /dev/urandom > rand_other && echo "$DIR $EXTRA" > dir
