#ifndef TB_AGENT_CGPIOD_SHIM_H
#define TB_AGENT_CGPIOD_SHIM_H
#include <gpiod.h>
#endif
