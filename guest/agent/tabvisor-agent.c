/*
 * tabvisor-agent: the guest's end of Tabvisor's control channel. It runs commands for the host (exit status and
 * output, with a time limit) and moves files in and out, over the virtio-console port "org.tabvisor.agent.0"
 * (/dev/vportNpM; the host side is emulator-core/src/machine/virtio/console.ts). The protocol is described in
 * emulator-core/src/agent/protocol.ts; this file follows it.
 *
 * One process, one poll loop: requests run side by side (a long command does not hold up a file transfer) and
 * only this loop writes to the port, so frames never interleave. It costs nothing while idle: it sleeps in poll().
 * Built static (glibc) by guest/build.sh, so the same binary serves the busybox and the Debian images.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PORT_NAME "org.tabvisor.agent.0"
#define VERSION "tabvisor-agent 1"
#define MAGIC 0x5654
#define HEADER_LEN 12
#define MAX_PAYLOAD (1u << 20)
#define DATA_CHUNK (64u << 10)
#define MAX_JOBS 16
#define MAX_FILES 8

enum {
  T_HELLO = 0x01, T_EXEC = 0x02, T_PUT = 0x03, T_DATA = 0x04, T_END = 0x05, T_GET = 0x06, T_CANCEL = 0x07,
  RP_HELLO = 0x81, RP_STDOUT = 0x82, RP_STDERR = 0x83, RP_EXIT = 0x84, RP_DATA = 0x85, RP_END = 0x86, RP_ERR = 0x87,
  RP_OK = 0x88, RP_SIZE = 0x89,
};

static int port = -1;

/* A command running for the host. */
struct job {
  uint32_t id;
  pid_t pid;           /* 0: slot free */
  int out, err;        /* pipe ends, -1 once closed */
  int exited, status;  /* waitpid's answer, once the child ended */
  int timed_out;
  int64_t deadline;    /* ms on the monotonic clock, 0: none */
};

/* A file moving in (PUT) or out (GET). */
struct file {
  uint32_t id;
  int fd;              /* -1: slot free */
  int put;
  uint64_t size, done;
  char path[PATH_MAX], part[PATH_MAX + 16];
};

static struct job jobs[MAX_JOBS];
static struct file files[MAX_FILES];
static int sigchld_pipe[2];

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void put32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      perror("tabvisor-agent: write to the host");
      exit(1); /* init starts a new agent: better than a stream the host cannot follow */
    }
    p += w;
    n -= (size_t)w;
  }
}

/* One frame to the host: header and payload in one write where they fit, so a reader sees them together. */
static void send_frame(uint8_t type, uint32_t id, const void *payload, uint32_t len) {
  static uint8_t buf[HEADER_LEN + DATA_CHUNK];
  buf[0] = MAGIC & 0xff; buf[1] = MAGIC >> 8; buf[2] = type; buf[3] = 0;
  put32(buf + 4, id);
  put32(buf + 8, len);
  if (len <= DATA_CHUNK) {
    if (len) memcpy(buf + HEADER_LEN, payload, len);
    write_all(port, buf, HEADER_LEN + len);
  } else {
    write_all(port, buf, HEADER_LEN);
    write_all(port, payload, len);
  }
}

static void send_error(uint32_t id, int err, const char *what, const char *path) {
  char msg[PATH_MAX + 128];
  int n = snprintf(msg + 4, sizeof msg - 4, "%s %s: %s", what, path, strerror(err));
  put32((uint8_t *)msg, (uint32_t)err);
  send_frame(RP_ERR, id, msg, 4 + (uint32_t)(n < 0 ? 0 : n >= (int)sizeof msg - 4 ? (int)sizeof msg - 5 : n));
}

/* --- commands ---------------------------------------------------------------------------------------------- */

static void on_sigchld(int sig) {
  (void)sig;
  int e = errno;
  if (write(sigchld_pipe[1], "c", 1) < 0) { /* full: a wake-up is pending already */ }
  errno = e;
}

static void start_job(uint32_t id, const uint8_t *p, uint32_t len) {
  if (len < 4) { send_error(id, EINVAL, "exec", "(short request)"); return; }
  uint32_t timeout = get32(p);
  struct job *j = NULL;
  for (int i = 0; i < MAX_JOBS; i++) if (jobs[i].pid == 0) { j = &jobs[i]; break; }
  if (!j) { send_error(id, EBUSY, "exec", "(too many commands running)"); return; }
  char *cmd = strndup((const char *)p + 4, len - 4);
  int out[2], err[2];
  if (!cmd || pipe2(out, O_CLOEXEC) < 0) { send_error(id, errno, "exec", "pipe"); free(cmd); return; }
  if (pipe2(err, O_CLOEXEC) < 0) { send_error(id, errno, "exec", "pipe"); close(out[0]); close(out[1]); free(cmd); return; }
  pid_t pid = fork();
  if (pid < 0) {
    send_error(id, errno, "exec", "fork");
    close(out[0]); close(out[1]); close(err[0]); close(err[1]); free(cmd);
    return;
  }
  if (pid == 0) {
    /* its own session and process group: a time limit kills the command and everything it started */
    setsid();
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (chdir("/root") < 0 && chdir("/") < 0) { /* stays where it is */ }
    setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    setenv("HOME", "/root", 1);
    setenv("TERM", "dumb", 1);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  free(cmd);
  close(out[1]);
  close(err[1]);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  *j = (struct job){ .id = id, .pid = pid, .out = out[0], .err = err[0], .deadline = timeout ? now_ms() + timeout : 0 };
}

/* Forwards what a command wrote; closes the pipe at its end (or, once the command ended, when it is empty: a
 * daemon the command started may hold it open for ever). */
static void pump(struct job *j, int *fd, uint8_t type) {
  static uint8_t buf[DATA_CHUNK];
  for (int rounds = 0; *fd >= 0 && rounds < 16; rounds++) {
    ssize_t n = read(*fd, buf, sizeof buf);
    if (n > 0) { send_frame(type, j->id, buf, (uint32_t)n); continue; }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN && !j->exited) return;
    close(*fd);
    *fd = -1;
  }
}

static void finish_job(struct job *j) {
  uint8_t p[12];
  int code = -1, sig = 0;
  if (WIFEXITED(j->status)) code = WEXITSTATUS(j->status);
  else if (WIFSIGNALED(j->status)) sig = WTERMSIG(j->status);
  put32(p, (uint32_t)code);
  put32(p + 4, (uint32_t)sig);
  put32(p + 8, (uint32_t)j->timed_out);
  send_frame(RP_EXIT, j->id, p, sizeof p);
  j->pid = 0;
}

/* Collects every child that ended (the commands' and any orphan the kernel gave us) and marks its job. */
static void reap(void) {
  int st;
  pid_t r;
  while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
    for (int i = 0; i < MAX_JOBS; i++) {
      if (jobs[i].pid == r && !jobs[i].exited) { jobs[i].exited = 1; jobs[i].status = st; }
    }
  }
}

static struct job *find_job(uint32_t id) {
  for (int i = 0; i < MAX_JOBS; i++) if (jobs[i].pid && jobs[i].id == id) return &jobs[i];
  return NULL;
}

/* --- files ------------------------------------------------------------------------------------------------- */

static struct file *find_file(uint32_t id) {
  for (int i = 0; i < MAX_FILES; i++) if (files[i].fd >= 0 && files[i].id == id) return &files[i];
  return NULL;
}

static struct file *free_file(void) {
  for (int i = 0; i < MAX_FILES; i++) if (files[i].fd < 0) return &files[i];
  return NULL;
}

static void drop_file(struct file *f) {
  close(f->fd);
  if (f->put) unlink(f->part);
  f->fd = -1;
}

/* mkdir -p of the directories above path */
static void make_parents(const char *path) {
  char d[PATH_MAX];
  snprintf(d, sizeof d, "%s", path);
  for (char *s = d + 1; *s; s++) {
    if (*s != '/') continue;
    *s = 0;
    mkdir(d, 0755);
    *s = '/';
  }
}

static int path_of(uint32_t id, const uint8_t *p, uint32_t len, char *out, const char *what) {
  if (len == 0 || len >= PATH_MAX || memchr(p, 0, len)) { send_error(id, EINVAL, what, "(bad path)"); return -1; }
  memcpy(out, p, len);
  out[len] = 0;
  return 0;
}

static void start_put(uint32_t id, const uint8_t *p, uint32_t len) {
  struct file *f = free_file();
  if (len < 12) { send_error(id, EINVAL, "put", "(short request)"); return; }
  if (!f) { send_error(id, EBUSY, "put", "(too many transfers)"); return; }
  if (path_of(id, p + 12, len - 12, f->path, "put") < 0) return;
  size_t n = strlen(f->path);
  memcpy(f->part, f->path, n);
  memcpy(f->part + n, ".tabvisor-part", sizeof ".tabvisor-part");
  make_parents(f->path);
  int fd = open(f->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, get32(p) & 07777);
  if (fd < 0) { send_error(id, errno, "put", f->path); return; }
  f->fd = fd;
  f->id = id;
  f->put = 1;
  f->size = get64(p + 4);
  f->done = 0;
}

static void put_data(uint32_t id, const uint8_t *p, uint32_t len) {
  struct file *f = find_file(id);
  if (!f || !f->put) return; /* failed or cancelled already: the host was told */
  if (f->done + len > f->size) { send_error(id, EFBIG, "put", f->path); drop_file(f); return; }
  while (len > 0) {
    ssize_t w = write(f->fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) { send_error(id, errno, "put", f->path); drop_file(f); return; }
    p += w;
    len -= (uint32_t)w;
    f->done += (uint64_t)w;
  }
}

static void put_end(uint32_t id) {
  struct file *f = find_file(id);
  if (!f || !f->put) return;
  if (f->done != f->size) { send_error(id, EIO, "put (short)", f->path); drop_file(f); return; }
  if (fsync(f->fd) < 0 || close(f->fd) < 0) { int e = errno; f->fd = -1; unlink(f->part); send_error(id, e, "put", f->path); return; }
  f->fd = -1;
  if (rename(f->part, f->path) < 0) { int e = errno; unlink(f->part); send_error(id, e, "put", f->path); return; }
  uint8_t ok[8];
  put64(ok, f->done);
  send_frame(RP_OK, id, ok, sizeof ok);
}

static void start_get(uint32_t id, const uint8_t *p, uint32_t len) {
  struct file *f = free_file();
  if (!f) { send_error(id, EBUSY, "get", "(too many transfers)"); return; }
  if (path_of(id, p, len, f->path, "get") < 0) return;
  int fd = open(f->path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0) { send_error(id, errno, "get", f->path); return; }
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    int e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    close(fd);
    send_error(id, e, "get", f->path);
    return;
  }
  f->fd = fd;
  f->id = id;
  f->put = 0;
  f->size = (uint64_t)st.st_size;
  f->done = 0;
  uint8_t sz[8];
  put64(sz, f->size);
  send_frame(RP_SIZE, id, sz, sizeof sz);
}

/* Sends the next piece of each file going out; returns whether any is left. */
static int get_step(void) {
  static uint8_t buf[DATA_CHUNK];
  int busy = 0;
  for (int i = 0; i < MAX_FILES; i++) {
    struct file *f = &files[i];
    if (f->fd < 0 || f->put) continue;
    for (int k = 0; k < 4 && f->fd >= 0; k++) {
      ssize_t n = f->done < f->size ? read(f->fd, buf, sizeof buf) : 0;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) { send_error(f->id, errno, "get", f->path); drop_file(f); break; }
      if (n == 0) { send_frame(RP_END, f->id, NULL, 0); drop_file(f); break; }
      if ((uint64_t)n > f->size - f->done) n = (ssize_t)(f->size - f->done); /* the file grew: send what was promised */
      send_frame(RP_DATA, f->id, buf, (uint32_t)n);
      f->done += (uint64_t)n;
    }
    if (f->fd >= 0) busy = 1;
  }
  return busy;
}

/* --- requests ---------------------------------------------------------------------------------------------- */

static void request(uint8_t type, uint32_t id, const uint8_t *p, uint32_t len) {
  switch (type) {
  case T_HELLO: send_frame(RP_HELLO, id, VERSION, sizeof VERSION - 1); break;
  case T_EXEC: start_job(id, p, len); break;
  case T_PUT: start_put(id, p, len); break;
  case T_DATA: put_data(id, p, len); break;
  case T_END: put_end(id); break;
  case T_GET: start_get(id, p, len); break;
  case T_CANCEL: {
    struct job *j = find_job(id);
    if (j) kill(-j->pid, SIGKILL); /* its EXIT still comes, for an id the host no longer waits for */
    struct file *f = find_file(id);
    if (f) drop_file(f);
    break;
  }
  default: send_error(id, ENOSYS, "request", "(unknown type)"); break;
  }
}

/* Frames from the host, reassembled; bytes without the magic are skipped (the host's stream resumes at a frame). */
static uint8_t inbuf[HEADER_LEN + MAX_PAYLOAD + 65536];
static size_t inlen;

static void read_port(void) {
  ssize_t n = read(port, inbuf + inlen, sizeof inbuf - inlen);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    /* the host side closed (the device was reset): wait a little for it to come back */
    usleep(200000);
    return;
  }
  inlen += (size_t)n;
  size_t at = 0;
  while (inlen - at >= 2) {
    if ((inbuf[at] | inbuf[at + 1] << 8) != MAGIC) { at++; continue; }
    if (inlen - at < HEADER_LEN) break;
    uint32_t len = get32(inbuf + at + 8);
    if (len > MAX_PAYLOAD) { at++; continue; }
    if (inlen - at < HEADER_LEN + len) break;
    request(inbuf[at + 2], get32(inbuf + at + 4), inbuf + at + HEADER_LEN, len);
    at += HEADER_LEN + len;
  }
  memmove(inbuf, inbuf + at, inlen - at);
  inlen -= at;
}

/* The port's device: /dev/NAME for the /sys/class/virtio-ports/NAME whose name file says PORT_NAME. */
static int find_port(char *dev, size_t size) {
  DIR *d = opendir("/sys/class/virtio-ports");
  struct dirent *e;
  int found = 0;
  while (d && !found && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[PATH_MAX], name[64] = "";
    snprintf(p, sizeof p, "/sys/class/virtio-ports/%s/name", e->d_name);
    FILE *f = fopen(p, "r");
    if (!f) continue;
    if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
    fclose(f);
    if (strcmp(name, PORT_NAME) == 0) { snprintf(dev, size, "/dev/%s", e->d_name); found = 1; }
  }
  if (d) closedir(d);
  return found;
}

int main(void) {
  char dev[PATH_MAX];
  if (!find_port(dev, sizeof dev)) {
    /* No channel on this machine: sleep instead of exiting, so that init does not start us again and again. */
    fprintf(stderr, "tabvisor-agent: no virtio port named %s; idle\n", PORT_NAME);
    for (;;) pause();
  }
  port = open(dev, O_RDWR | O_CLOEXEC);
  if (port < 0) { perror(dev); for (;;) pause(); }
  for (int i = 0; i < MAX_FILES; i++) files[i].fd = -1;
  if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0) { perror("pipe"); return 1; }
  struct sigaction sa = { .sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP };
  sigaction(SIGCHLD, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);

  /* Says it is there: the host learns the agent (re)started, and drops what an earlier agent left unanswered. */
  send_frame(RP_HELLO, 0, VERSION, sizeof VERSION - 1);

  for (;;) {
    struct pollfd fds[2 + 2 * MAX_JOBS];
    struct job *owner[2 + 2 * MAX_JOBS];
    int n = 0;
    fds[n] = (struct pollfd){ .fd = port, .events = POLLIN }; owner[n++] = NULL;
    fds[n] = (struct pollfd){ .fd = sigchld_pipe[0], .events = POLLIN }; owner[n++] = NULL;
    int64_t now = now_ms(), wait = -1;
    for (int i = 0; i < MAX_JOBS; i++) {
      struct job *j = &jobs[i];
      if (!j->pid) continue;
      if (j->out >= 0) { fds[n] = (struct pollfd){ .fd = j->out, .events = POLLIN }; owner[n++] = j; }
      if (j->err >= 0) { fds[n] = (struct pollfd){ .fd = j->err, .events = POLLIN }; owner[n++] = j; }
      if (j->deadline && !j->exited) {
        int64_t left = j->deadline - now;
        if (left < 0) left = 0;
        if (wait < 0 || left < wait) wait = left;
      }
    }
    int busy = 0;
    for (int i = 0; i < MAX_FILES; i++) if (files[i].fd >= 0 && !files[i].put) busy = 1;
    if (busy) wait = 0;
    if (poll(fds, (nfds_t)n, (int)wait) < 0 && errno != EINTR) { perror("poll"); return 1; }

    if (fds[1].revents) { char b[64]; while (read(sigchld_pipe[0], b, sizeof b) > 0) {} }
    reap();
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) read_port();
    for (int i = 2; i < n; i++) {
      struct job *j = owner[i];
      if (!j->pid || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (fds[i].fd == j->out) pump(j, &j->out, RP_STDOUT);
      else if (fds[i].fd == j->err) pump(j, &j->err, RP_STDERR);
    }
    now = now_ms();
    for (int i = 0; i < MAX_JOBS; i++) {
      struct job *j = &jobs[i];
      if (!j->pid) continue;
      if (j->deadline && !j->exited && now >= j->deadline && !j->timed_out) { j->timed_out = 1; kill(-j->pid, SIGKILL); }
      if (j->exited) {
        pump(j, &j->out, RP_STDOUT);
        pump(j, &j->err, RP_STDERR);
        finish_job(j);
      }
    }
    get_step();
  }
}
