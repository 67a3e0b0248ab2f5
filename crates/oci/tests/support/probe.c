/* Skiff's syscall probe for the least-privilege tests: makes each system call named on the
 * command line and prints "<name> ok" or "<name> <errno>". Built static by the tests and run as
 * a container's first process. The calls are harmless only there (mount would cover /tmp,
 * ptrace would make the caller traced), so it refuses to run anywhere but as pid 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long call(const char *name) {
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(name, "mount")) return syscall(SYS_mount, "none", "/tmp", "tmpfs", 0L, 0L);
    if (!strcmp(name, "umount2")) return syscall(SYS_umount2, "/tmp", 0L);
    if (!strcmp(name, "ptrace")) return syscall(SYS_ptrace, (long)PTRACE_TRACEME, 0L, 0L, 0L);
    /* KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), creating it (1). */
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0L, -3L, 1L);
    if (!strcmp(name, "unshare")) return syscall(SYS_unshare, (long)CLONE_NEWUSER);
    if (!strcmp(name, "clone-newuser")) {
        long pid = syscall(SYS_clone, (long)(CLONE_NEWUSER | SIGCHLD), 0L, 0L, 0L, 0L);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid((pid_t)pid, NULL, 0);
        return pid;
    }
    if (!strcmp(name, "fork")) {
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, NULL, 0);
        return pid;
    }
    errno = EINVAL;
    return -2;
}

int main(int argc, char **argv) {
    if (getpid() != 1) {
        fprintf(stderr, "probe: run only as a container's first process (pid 1)\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long r = call(argv[i]);
        if (r == -2) printf("%s unknown\n", argv[i]);
        else if (r < 0) printf("%s %d\n", argv[i], errno);
        else printf("%s ok\n", argv[i]);
    }
    fflush(stdout);
    return 0;
}
