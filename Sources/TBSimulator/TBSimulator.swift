/// The ThingsBoard device-API simulator: MQTT 3.1.1 server, provisioning, device sessions, control interface.
public enum TBSimulator {}
