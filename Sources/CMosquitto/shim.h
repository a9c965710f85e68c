#ifndef TB_AGENT_CMOSQUITTO_SHIM_H
#define TB_AGENT_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#endif
