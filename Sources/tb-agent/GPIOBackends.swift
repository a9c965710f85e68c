import AgentCore
import AgentGPIO
import AgentSimulated

/// The composition root's one choice of GPIO backend: libgpiod, or the simulated bank `[gpio] backend` names.
enum GPIOBackends {
    static func make(_ settings: GPIOSettings) -> any GPIOBackend {
        switch settings.backend {
        case .libgpiod: return LibgpiodBackend()
        case .simulated(let directory): return SimulatedGPIOBackend(directory: directory)
        }
    }
}
