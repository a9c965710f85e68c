#ifndef TB_AGENT_CPROCESSCONTROL_SHIM_H
#define TB_AGENT_CPROCESSCONTROL_SHIM_H
#include <malloc.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>

/* glibc ≥ 2.34 (bookworm has 2.36) declares these only with _GNU_SOURCE, which Swift's Glibc module does not set. */
extern int posix_spawn_file_actions_addclosefrom_np(posix_spawn_file_actions_t *actions, int from);
extern int posix_spawn_file_actions_addchdir_np(posix_spawn_file_actions_t *actions, const char *path);

/* A spawned child closes every descriptor from `from` up, whatever other threads opened meanwhile. */
static inline int tb_spawn_add_closefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

static inline int tb_spawn_add_chdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

/* prctl(2) is variadic, which Swift cannot call: the two requests the agent makes, as plain functions. */
static inline int tb_prctl_set_dumpable(int dumpable) {
    return prctl(PR_SET_DUMPABLE, (unsigned long)dumpable, 0UL, 0UL, 0UL);
}

static inline int tb_prctl_get_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL);
}

/* glibc's allocator, bounded for a long-running agent on a small board: at most two arenas (one per thread
 * otherwise, each keeping its own freed memory), blocks of 64 KiB and more mapped on their own and returned to the
 * kernel when freed (a fixed threshold: glibc would otherwise raise it after the first large free), and free memory
 * at the top of the heap returned above 128 KiB. mallopt returns 1 on success. */
static inline int tb_malloc_bound(void) {
    return mallopt(M_ARENA_MAX, 2) & mallopt(M_MMAP_THRESHOLD, 64 * 1024) & mallopt(M_TRIM_THRESHOLD, 128 * 1024);
}

/* MADV_PAGEOUT (Linux 5.4): the pages of [addr, addr+len) that only this process maps are reclaimed now; clean
 * file pages are simply dropped (read back from the file if touched again), nothing is lost. glibc 2.36 declares
 * the constant only with _GNU_SOURCE/_DEFAULT_SOURCE. Returns madvise's result (-1 with EINVAL on older kernels). */
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
static inline int tb_madvise_pageout(void *addr, size_t len) {
    return madvise(addr, len, MADV_PAGEOUT);
}
#endif
