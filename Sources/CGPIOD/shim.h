#ifndef TB_AGENT_CGPIOD_SHIM_H
#define TB_AGENT_CGPIOD_SHIM_H
#include <gpiod.h>

// Which libgpiod API this gpiod.h declares, so that a build which chose the other one (Package.swift decides,
// and SwiftPM may keep a decision cached from before libgpiod-dev changed) stops with a message naming the cause
// (see the top of Sources/AgentGPIO/LibGPIODv1.swift and LibGPIODv2.swift). v1's header (1.x) defines
// GPIOD_LINE_BULK_MAX_LINES; v2's (2.x) has no line bulks.
#if defined(GPIOD_LINE_BULK_MAX_LINES)
typedef int TBGPIODHeaderIsV1;
#else
typedef int TBGPIODHeaderIsV2;
#endif

#endif
