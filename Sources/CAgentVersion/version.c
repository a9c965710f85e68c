#include "CAgentVersion.h"

// Not const and not static: the compiler may not assume its contents, so rewriting these bytes in the binary
// changes what tb_agent_version() returns. scripts/lib/stamp-version.py rewrites it (same length, NUL-padded).
__attribute__((used)) char tb_agent_version_stamp[64] = "TB-AGENT-VERSION=0.1.0";

const char *tb_agent_version(void) {
    return tb_agent_version_stamp + sizeof("TB-AGENT-VERSION=") - 1;
}
