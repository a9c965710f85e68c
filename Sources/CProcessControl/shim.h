#ifndef TB_AGENT_CPROCESSCONTROL_SHIM_H
#define TB_AGENT_CPROCESSCONTROL_SHIM_H
#include <sys/prctl.h>

/* prctl(2) is variadic, which Swift cannot call: the two requests the agent makes, as plain functions. */
static inline int tb_prctl_set_dumpable(int dumpable) {
    return prctl(PR_SET_DUMPABLE, (unsigned long)dumpable, 0UL, 0UL, 0UL);
}

static inline int tb_prctl_get_dumpable(void) {
    return prctl(PR_GET_DUMPABLE, 0UL, 0UL, 0UL, 0UL);
}
#endif
