#ifndef TB_AGENT_VERSION_H
#define TB_AGENT_VERSION_H

/// The agent's version, as `TB-AGENT-VERSION=<version>` padded with NULs to 64 bytes: a string a release script
/// (or a test making a second build of another version) rewrites in the built binary, where Swift constants would
/// be folded into the code. Read it through tb_agent_version().
const char *tb_agent_version(void);

#endif
