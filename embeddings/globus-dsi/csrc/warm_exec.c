/*
 * transfercore-dsi-exec: what the Globus daemon execs for each connection
 * (its -exec option) when a pool of warm session processes runs
 * (transfercore_globus_dsi.warm).  The connection is on stdin.  It is handed
 * to a warm process, one whose Python has already started and imported the
 * DSI; when none takes it promptly, or anything in the hand-over fails before
 * the warm process confirms, this program becomes the real server instead
 * (execv with the same arguments), exactly as the daemon would have started
 * it.  After a hand-over it waits until the warm process ends, so the daemon
 * counts the session as long as it lasts.
 *
 * Environment (set by transfercore_globus_dsi.launch):
 *   TRANSFERCORE_DSI_SERVER        the real globus-gridftp-server (required)
 *   TRANSFERCORE_DSI_WARM_SOCKET   the pool's Unix socket
 *   TRANSFERCORE_DSI_WARM_WAIT_MS  how long to wait for a warm process (default 30)
 *
 * The protocol is described beside tc_warm_wait in dsi_glue.c.
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int
wait_byte(int sock, int ms, char want)
{
    struct pollfd pfd = {sock, POLLIN, 0};
    char got;

    if (poll(&pfd, 1, ms) != 1)
        return 0;
    return recv(sock, &got, 1, 0) == 1 && got == want;
}

/* 1: a warm process has the connection; 0: it is still ours to serve. */
static int
hand_over(const char *path, int wait_ms)
{
    struct sockaddr_un addr;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } cbuf;
    struct msghdr msg;
    struct cmsghdr *cm;
    char byte = 'c';
    struct iovec iov = {&byte, 1};
    int conn = STDIN_FILENO;
    int sock;

    if (strlen(path) >= sizeof(addr.sun_path))
        return 0;
    sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0)
        return 0;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, path);
    if (connect(sock, (struct sockaddr *) &addr, sizeof(addr)) != 0
            || !wait_byte(sock, wait_ms, 'w')) {
        close(sock);
        return 0;
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof(cbuf.buf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &conn, sizeof(int));
    if (sendmsg(sock, &msg, MSG_NOSIGNAL) != 1 || !wait_byte(sock, 2000, 'k')) {
        close(sock);
        return 0;
    }
    /* ours no longer: the client's connection ends when the warm process closes it */
    close(STDIN_FILENO);
    for (;;) {
        char sink[64];
        ssize_t n = read(sock, sink, sizeof(sink));

        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    return 1;
}

int
main(int argc, char **argv)
{
    const char *server = getenv("TRANSFERCORE_DSI_SERVER");
    const char *path = getenv("TRANSFERCORE_DSI_WARM_SOCKET");
    const char *wait = getenv("TRANSFERCORE_DSI_WARM_WAIT_MS");
    int wait_ms = 30;

    (void) argc;
    if (server == NULL || *server != '/') {
        fprintf(stderr, "transfercore-dsi-exec: TRANSFERCORE_DSI_SERVER must name the server "
                        "binary by its absolute path (start the server with transfercore globus-server)\n");
        return 127;
    }
    if (wait != NULL && *wait != '\0')
        wait_ms = atoi(wait);
    if (path != NULL && *path != '\0' && wait_ms > 0 && hand_over(path, wait_ms))
        return 0;
    argv[0] = (char *) server;
    execv(server, argv);
    fprintf(stderr, "transfercore-dsi-exec: cannot start %s: %s\n", server, strerror(errno));
    return 127;
}
