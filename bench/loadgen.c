/*
 * loadgen: the parts of bench/bench.ts that wrk cannot do. Loopback only: every address
 * given must be 127.x.y.z (checked), and every mode stops by itself (a duration or a count).
 *
 *   loadgen rate  <ip> <port> <path> <tokens-file> <rate/s> <seconds> <connections>
 *       Open loop at a fixed rate: request k is due at start + k/rate, whether or not the
 *       earlier ones were answered; it goes out on the first idle connection (a queue holds
 *       it while all are busy). Latency is measured from the time it was DUE, not sent, so
 *       a stall counts against the server (no coordinated omission). POST with a JSON-RPC
 *       body and the next token of the pool. Prints one JSON line.
 *
 *   loadgen sse   <ip> <port> <path> <token> <events> <repeats>
 *       GET an SSE stream <repeats> times, one after the other on a new connection each:
 *       time from sending the request to the first complete event ("\n\n") and to the
 *       <events>th. Prints one JSON line with the medians.
 *
 *   loadgen start <ip> <port> <path> <token> <log-file> <timeout-s> -- <command> [args...]
 *       Start-up time: forks and execs <command> (stdout and stderr appended to <log-file>),
 *       then polls POST <path> with the token every 0.5 ms (a new connection each time)
 *       until a 200; prints {"ms": time from fork to that 200}, then stops the command
 *       (SIGTERM, SIGKILL after 5 s). Exit 1 if no 200 within <timeout-s>.
 *
 *   loadgen sse-server <ip> <port> <seconds>
 *       The SSE origin: answers any GET with text/event-stream, `events` events (query
 *       parameter, default 1000), each in its own write(), `interval_us` apart (default 0),
 *       then closes. Exits after <seconds>.
 *
 * Build: gcc -O2 -o loadgen bench/loadgen.c -lpthread -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *msg) {
  perror(msg);
  exit(1);
}

static struct sockaddr_in loopback_addr(const char *ip, int port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, ip, &a.sin_addr) != 1) {
    fprintf(stderr, "loadgen: %s is not an IPv4 address\n", ip);
    exit(2);
  }
  if ((ntohl(a.sin_addr.s_addr) >> 24) != 127) {
    fprintf(stderr, "loadgen: refusing %s: loopback (127.0.0.0/8) only\n", ip);
    exit(2);
  }
  return a;
}

/* ---------- HTTP/1.1 response parser (status, Content-Length or chunked, or until close) ---------- */

enum { P_HEAD, P_BODY_LEN, P_CHUNK_SIZE, P_CHUNK_DATA, P_CHUNK_CRLF, P_TRAILER, P_BODY_CLOSE, P_DONE };

typedef struct {
  int state;
  int status;
  long remaining;
  int close_after;
  char head[16384];
  int head_len;
  char line[64];
  int line_len;
  /* body consumer: counts SSE event terminators */
  int last_nl;
  long events;
} parser;

static void parser_reset(parser *p) {
  p->state = P_HEAD;
  p->status = 0;
  p->remaining = 0;
  p->close_after = 0;
  p->head_len = 0;
  p->line_len = 0;
  p->last_nl = 0;
  p->events = 0;
}

static void body_bytes(parser *p, const char *d, long n) {
  for (long i = 0; i < n; i++) {
    if (d[i] == '\n') {
      if (p->last_nl) {
        p->events++;
        p->last_nl = 0;
      } else {
        p->last_nl = 1;
      }
    } else if (d[i] != '\r') {
      p->last_nl = 0;
    }
  }
}

static int header_has(const char *head, const char *name, const char *value) {
  /* case-insensitive search for "\r\nname: ...value..." */
  const char *h = head;
  size_t nl = strlen(name);
  while ((h = strstr(h, "\r\n")) != NULL) {
    h += 2;
    if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
      const char *end = strstr(h, "\r\n");
      size_t len = end ? (size_t)(end - h) : strlen(h);
      char buf[512];
      if (len >= sizeof buf) len = sizeof buf - 1;
      memcpy(buf, h, len);
      buf[len] = 0;
      if (value == NULL) return 1;
      if (strcasestr(buf + nl + 1, value)) return 1;
    }
  }
  return 0;
}

static long header_long(const char *head, const char *name) {
  const char *h = head;
  size_t nl = strlen(name);
  while ((h = strstr(h, "\r\n")) != NULL) {
    h += 2;
    if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') return atol(h + nl + 1);
  }
  return -1;
}

/* Feeds bytes; returns bytes consumed (stops at the end of one response), -1 on a parse error. */
static long parser_feed(parser *p, const char *d, long n) {
  long i = 0;
  while (i < n && p->state != P_DONE) {
    switch (p->state) {
    case P_HEAD: {
      if (p->head_len >= (int)sizeof p->head - 1) return -1;
      p->head[p->head_len++] = d[i++];
      p->head[p->head_len] = 0;
      if (p->head_len >= 4 && memcmp(p->head + p->head_len - 4, "\r\n\r\n", 4) == 0) {
        if (strncmp(p->head, "HTTP/1.", 7) != 0) return -1;
        p->status = atoi(p->head + 9);
        p->close_after = header_has(p->head, "connection", "close") || p->head[7] == '0';
        long cl = header_long(p->head, "content-length");
        if (header_has(p->head, "transfer-encoding", "chunked")) {
          p->state = P_CHUNK_SIZE;
          p->line_len = 0;
        } else if (cl >= 0) {
          p->remaining = cl;
          p->state = cl > 0 ? P_BODY_LEN : P_DONE;
        } else if (p->status == 204 || p->status == 304 || (p->status >= 100 && p->status < 200)) {
          p->state = P_DONE;
        } else {
          p->state = P_BODY_CLOSE;
          p->close_after = 1;
        }
      }
      break;
    }
    case P_BODY_LEN: {
      long take = n - i < p->remaining ? n - i : p->remaining;
      body_bytes(p, d + i, take);
      i += take;
      p->remaining -= take;
      if (p->remaining == 0) p->state = P_DONE;
      break;
    }
    case P_CHUNK_SIZE:
    case P_TRAILER: {
      char c = d[i++];
      if (p->line_len < (int)sizeof p->line - 1) p->line[p->line_len++] = c;
      if (c == '\n') {
        p->line[p->line_len] = 0;
        if (p->state == P_TRAILER) {
          if (p->line_len <= 2) p->state = P_DONE;
          p->line_len = 0;
          break;
        }
        long size = strtol(p->line, NULL, 16);
        p->line_len = 0;
        if (size == 0) p->state = P_TRAILER;
        else {
          p->remaining = size;
          p->state = P_CHUNK_DATA;
        }
      }
      break;
    }
    case P_CHUNK_DATA: {
      long take = n - i < p->remaining ? n - i : p->remaining;
      body_bytes(p, d + i, take);
      i += take;
      p->remaining -= take;
      if (p->remaining == 0) {
        p->state = P_CHUNK_CRLF;
        p->remaining = 2;
      }
      break;
    }
    case P_CHUNK_CRLF:
      i++;
      if (--p->remaining == 0) p->state = P_CHUNK_SIZE;
      break;
    case P_BODY_CLOSE:
      body_bytes(p, d + i, n - i);
      i = n;
      break;
    }
  }
  return i;
}

static int connect_to(struct sockaddr_in *a, int nonblock) {
  int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *sorted, long n, double q) {
  if (n == 0) return NAN;
  long k = (long)ceil(q * n) - 1;
  if (k < 0) k = 0;
  if (k >= n) k = n - 1;
  return sorted[k];
}

/* ---------- rate mode ---------- */

typedef struct {
  int fd;
  int busy;
  int connecting;
  double due;
  parser p;
  char *out;
  long out_len, out_off;
} conn;

static char **requests;
static long *request_len;
static long n_requests;

static void load_requests(const char *path, const char *file) {
  FILE *f = fopen(file, "r");
  if (!f) die(file);
  const char *body =
      "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"text\":\"hello\"}}}";
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long cap_req = 1024;
  requests = malloc(sizeof(char *) * cap_req);
  request_len = malloc(sizeof(long) * cap_req);
  while ((len = getline(&line, &cap, f)) > 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (len == 0) continue;
    if (n_requests == cap_req) {
      cap_req *= 2;
      requests = realloc(requests, sizeof(char *) * cap_req);
      request_len = realloc(request_len, sizeof(long) * cap_req);
    }
    char *r = NULL;
    int rl = asprintf(&r,
                      "POST %s HTTP/1.1\r\nHost: mcp.example.test\r\nContent-Type: application/json\r\n"
                      "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2025-06-18\r\n"
                      "User-Agent: loadgen (mcp-gate bench)\r\nAuthorization: Bearer %s\r\nContent-Length: %zu\r\n\r\n%s",
                      path, line, strlen(body), body);
    if (rl < 0) die("asprintf");
    requests[n_requests] = r;
    request_len[n_requests] = rl;
    n_requests++;
  }
  fclose(f);
  if (n_requests == 0) {
    fprintf(stderr, "loadgen: no tokens in %s\n", file);
    exit(2);
  }
}

static int run_rate(int argc, char **argv) {
  if (argc < 9) {
    fprintf(stderr, "usage: loadgen rate <ip> <port> <path> <tokens-file> <rate> <seconds> <connections>\n");
    return 2;
  }
  struct sockaddr_in addr = loopback_addr(argv[2], atoi(argv[3]));
  load_requests(argv[4], argv[5]);
  double rate = atof(argv[6]);
  double seconds = atof(argv[7]);
  int nconn = atoi(argv[8]);
  if (rate <= 0 || seconds <= 0 || seconds > 600 || nconn <= 0 || nconn > 4096) {
    fprintf(stderr, "loadgen: bad rate/seconds/connections\n");
    return 2;
  }
  long total = (long)(rate * seconds);
  double *lat = malloc(sizeof(double) * (total + 1));
  long n_lat = 0, non200 = 0, errors = 0, sent = 0, next_token = 0;
  int ep = epoll_create1(0);
  conn *cs = calloc(nconn, sizeof(conn));
  double *queue = malloc(sizeof(double) * (total + 1)); /* due times waiting for a connection */
  long q_head = 0, q_tail = 0;
  for (int i = 0; i < nconn; i++) {
    cs[i].fd = -1;
  }
  double start = now_s() + 0.05;
  long scheduled = 0;
  double hard_stop = start + seconds + 10.0; /* late answers get 10 s, then count as errors */

  /* open connections first */
  for (int i = 0; i < nconn; i++) {
    cs[i].fd = connect_to(&addr, 1);
    if (cs[i].fd < 0) die("connect");
    cs[i].connecting = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }

  struct epoll_event evs[256];
  for (;;) {
    double t = now_s();
    while (scheduled < total && start + scheduled / rate <= t) {
      queue[q_tail++] = start + scheduled / rate;
      scheduled++;
    }
    /* hand queued requests to idle connections */
    for (int i = 0; i < nconn && q_head < q_tail; i++) {
      conn *c = &cs[i];
      if (c->busy || c->connecting || c->fd < 0) continue;
      c->busy = 1;
      c->due = queue[q_head++];
      c->out = requests[next_token % n_requests];
      c->out_len = request_len[next_token % n_requests];
      next_token++;
      c->out_off = 0;
      parser_reset(&c->p);
      ssize_t w = write(c->fd, c->out, c->out_len);
      if (w > 0) c->out_off = w;
      sent++;
    }
    if (scheduled >= total && q_head == q_tail) {
      int any = 0;
      for (int i = 0; i < nconn; i++) any |= cs[i].busy;
      if (!any) break;
    }
    if (t > hard_stop) {
      for (int i = 0; i < nconn; i++) if (cs[i].busy) errors++;
      errors += q_tail - q_head;
      break;
    }
    double next_due = scheduled < total ? start + scheduled / rate : t + 0.01;
    int timeout_ms = (int)((next_due - now_s()) * 1000);
    if (timeout_ms < 0) timeout_ms = 0;
    if (timeout_ms > 10) timeout_ms = 10;
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    for (int k = 0; k < n; k++) {
      conn *c = &cs[evs[k].data.u32];
      if (c->fd < 0) continue;
      if (c->connecting && (evs[k].events & EPOLLOUT)) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
          fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
          exit(1);
        }
        c->connecting = 0;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = evs[k].data.u32};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
      }
      if (c->busy && c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w > 0) c->out_off += w;
      }
      if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        char buf[65536];
        ssize_t r = read(c->fd, buf, sizeof buf);
        int closed = r == 0 || (r < 0 && errno != EAGAIN);
        long off = 0;
        while (r > 0 && off < r && c->busy) {
          long used = parser_feed(&c->p, buf + off, r - off);
          if (used < 0) {
            closed = 1;
            break;
          }
          off += used;
          if (c->p.state == P_DONE) {
            double t2 = now_s();
            lat[n_lat++] = t2 - c->due;
            if (c->p.status != 200) non200++;
            c->busy = 0;
            if (c->p.close_after) closed = 1;
          }
        }
        if (closed) {
          if (c->busy) {
            if (c->p.state == P_BODY_CLOSE) {
              lat[n_lat++] = now_s() - c->due;
              if (c->p.status != 200) non200++;
            } else {
              errors++;
            }
            c->busy = 0;
          }
          epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
          close(c->fd);
          c->fd = connect_to(&addr, 1);
          if (c->fd < 0) die("reconnect");
          c->connecting = 1;
          struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = evs[k].data.u32};
          epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        }
      }
    }
  }
  double elapsed = now_s() - start;
  qsort(lat, n_lat, sizeof(double), cmp_double);
  printf("{\"mode\":\"rate\",\"rate\":%.0f,\"seconds\":%.1f,\"connections\":%d,\"sent\":%ld,\"completed\":%ld,"
         "\"non200\":%ld,\"errors\":%ld,\"elapsed\":%.3f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
         "\"p999_ms\":%.3f,\"max_ms\":%.3f}\n",
         rate, seconds, nconn, sent, n_lat, non200, errors, elapsed, pct(lat, n_lat, 0.50) * 1e3,
         pct(lat, n_lat, 0.90) * 1e3, pct(lat, n_lat, 0.99) * 1e3, pct(lat, n_lat, 0.999) * 1e3,
         n_lat ? lat[n_lat - 1] * 1e3 : NAN);
  return 0;
}

/* ---------- sse client mode ---------- */

static int run_sse(int argc, char **argv) {
  if (argc < 8) {
    fprintf(stderr, "usage: loadgen sse <ip> <port> <path> <token> <events> <repeats>\n");
    return 2;
  }
  struct sockaddr_in addr = loopback_addr(argv[2], atoi(argv[3]));
  const char *path = argv[4];
  const char *token = argv[5];
  long events = atol(argv[6]);
  int repeats = atoi(argv[7]);
  if (events <= 0 || repeats <= 0 || repeats > 1000) return 2;
  double *first = calloc(repeats, sizeof(double));
  double *all = calloc(repeats, sizeof(double));
  int failures = 0, ok = 0;
  for (int r = 0; r < repeats; r++) {
    int fd = connect_to(&addr, 0);
    if (fd < 0) die("connect");
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: mcp.example.test\r\nAccept: text/event-stream\r\n"
                     "MCP-Protocol-Version: 2025-06-18\r\nUser-Agent: loadgen (mcp-gate bench)\r\n"
                     "Authorization: Bearer %s\r\n\r\n",
                     path, token);
    parser p;
    parser_reset(&p);
    double t0 = now_s(), t_first = -1, t_all = -1;
    if (write(fd, req, n) != n) die("write");
    char buf[65536];
    while (p.state != P_DONE) {
      ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) break;
      long off = 0;
      while (off < got && p.state != P_DONE) {
        long used = parser_feed(&p, buf + off, got - off);
        if (used < 0) break;
        off += used;
      }
      double t = now_s();
      if (t_first < 0 && p.events >= 1) t_first = t - t0;
      if (t_all < 0 && p.events >= events) {
        t_all = t - t0;
        break;
      }
    }
    close(fd);
    if (p.status != 200 || t_all < 0) {
      failures++;
      if (failures == 1) fprintf(stderr, "loadgen sse: status %d, %ld events\n", p.status, p.events);
      continue;
    }
    first[ok] = t_first;
    all[ok] = t_all;
    ok++;
  }
  qsort(first, ok, sizeof(double), cmp_double);
  qsort(all, ok, sizeof(double), cmp_double);
  printf("{\"mode\":\"sse\",\"repeats\":%d,\"ok\":%d,\"failures\":%d,\"first_ms_median\":%.3f,\"first_ms_p90\":%.3f,"
         "\"all_ms_median\":%.3f,\"all_ms_p90\":%.3f,\"all_ms_min\":%.3f}\n",
         repeats, ok, failures, pct(first, ok, 0.5) * 1e3, pct(first, ok, 0.9) * 1e3, pct(all, ok, 0.5) * 1e3,
         pct(all, ok, 0.9) * 1e3, ok ? all[0] * 1e3 : NAN);
  return failures ? 1 : 0;
}

/* ---------- sse server mode ---------- */

static void *sse_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  char req[8192];
  int len = 0;
  while (len < (int)sizeof req - 1) {
    ssize_t r = read(fd, req + len, sizeof req - 1 - len);
    if (r <= 0) {
      close(fd);
      return NULL;
    }
    len += r;
    req[len] = 0;
    if (strstr(req, "\r\n\r\n")) break;
  }
  long events = 1000, interval_us = 0;
  char *q = strchr(req, '?');
  char *sp = strchr(req + 4, ' ');
  if (q && (!sp || q < sp)) {
    char *e = strstr(q, "events=");
    if (e && (!sp || e < sp)) events = atol(e + 7);
    char *iv = strstr(q, "interval_us=");
    if (iv && (!sp || iv < sp)) interval_us = atol(iv + 12);
  }
  if (events < 0 || events > 100000) events = 1000;
  if (interval_us < 0 || interval_us > 1000000) interval_us = 0;
  const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "Connection: close\r\n\r\n";
  if (write(fd, head, strlen(head)) < 0) goto out;
  for (long i = 1; i <= events; i++) {
    char ev[512];
    int n = snprintf(ev, sizeof ev,
                     "id: %ld\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
                     "\"params\":{\"progressToken\":\"bench\",\"progress\":%ld,\"total\":%ld}}\n\n",
                     i, i, events);
    if (write(fd, ev, n) != n) goto out;
    if (interval_us > 0 && i < events) {
      struct timespec ts = {.tv_sec = interval_us / 1000000, .tv_nsec = (interval_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
  }
out:
  shutdown(fd, SHUT_WR);
  /* drain until the peer closes, briefly, so that the last events are not reset away */
  struct timeval tv = {.tv_sec = 1};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char sink[4096];
  while (read(fd, sink, sizeof sink) > 0) {
  }
  close(fd);
  return NULL;
}

static int run_sse_server(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: loadgen sse-server <ip> <port> <seconds>\n");
    return 2;
  }
  struct sockaddr_in addr = loopback_addr(argv[2], atoi(argv[3]));
  double seconds = atof(argv[4]);
  if (seconds <= 0 || seconds > 86400) return 2;
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(ls, 1024) < 0) die("listen");
  double end = now_s() + seconds;
  for (;;) {
    double left = end - now_s();
    if (left <= 0) break;
    struct timeval tv = {.tv_sec = (long)left, .tv_usec = (long)((left - (long)left) * 1e6)};
    setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int fd = accept(ls, NULL, NULL);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) continue;
      die("accept");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, sse_conn, (void *)(intptr_t)fd) != 0) close(fd);
  }
  return 0;
}

/* ---------- start mode ---------- */

static int probe_once(struct sockaddr_in *a, const char *req, int req_len) {
  int fd = connect_to(a, 0);
  if (fd < 0) return 0;
  struct timeval tv = {.tv_sec = 2};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int status = 0;
  if (write(fd, req, req_len) == req_len) {
    parser p;
    parser_reset(&p);
    char buf[16384];
    while (p.state == P_HEAD) {
      ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) break;
      if (parser_feed(&p, buf, got) < 0) break;
    }
    status = p.status;
  }
  close(fd);
  return status;
}

static int run_start(int argc, char **argv) {
  int dash = 0;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      dash = i;
      break;
    }
  if (dash != 8 || dash + 1 >= argc) {
    fprintf(stderr, "usage: loadgen start <ip> <port> <path> <token> <log-file> <timeout-s> -- <command> [args...]\n");
    return 2;
  }
  struct sockaddr_in addr = loopback_addr(argv[2], atoi(argv[3]));
  const char *body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
  char *req = NULL;
  int req_len = asprintf(&req,
                         "POST %s HTTP/1.1\r\nHost: mcp.example.test\r\nContent-Type: application/json\r\n"
                         "Accept: application/json, text/event-stream\r\nAuthorization: Bearer %s\r\n"
                         "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                         argv[4], argv[5], strlen(body), body);
  double timeout = atof(argv[7]);
  if (timeout <= 0 || timeout > 120) timeout = 30;
  double t0 = now_s();
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    int fd = open(argv[6], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execvp(argv[dash + 1], argv + dash + 1);
    _exit(127);
  }
  double ms = -1;
  int exited = 0, wstatus = 0;
  while (now_s() - t0 < timeout) {
    if (probe_once(&addr, req, req_len) == 200) {
      ms = (now_s() - t0) * 1e3;
      break;
    }
    if (waitpid(pid, &wstatus, WNOHANG) == pid) {
      exited = 1;
      break;
    }
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 500000};
    nanosleep(&ts, NULL);
  }
  if (!exited) {
    kill(pid, SIGTERM);
    double t1 = now_s();
    while (waitpid(pid, &wstatus, WNOHANG) != pid) {
      if (now_s() - t1 > 5) {
        kill(pid, SIGKILL);
        waitpid(pid, &wstatus, 0);
        break;
      }
      struct timespec ts = {.tv_sec = 0, .tv_nsec = 2000000};
      nanosleep(&ts, NULL);
    }
  }
  if (ms < 0) {
    printf("{\"ms\":null,\"exited\":%d}\n", exited);
    return 1;
  }
  printf("{\"ms\":%.3f}\n", ms);
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 2 && strcmp(argv[1], "rate") == 0) return run_rate(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "sse") == 0) return run_sse(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "sse-server") == 0) return run_sse_server(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "start") == 0) return run_start(argc, argv);
  fprintf(stderr, "usage: loadgen rate|sse|sse-server|start ...\n");
  return 2;
}
