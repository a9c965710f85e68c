import AgentCore
/// See Package.swift for this module's role.
public enum AgentSimulatedModule {}
