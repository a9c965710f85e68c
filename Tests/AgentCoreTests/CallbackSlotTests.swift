import AgentCore
import Synchronization
import Testing

@Suite struct CallbackSlotTests {
    @Test func callsTheCallbackSetAndSaysWhenNoneIs() {
        let slot = CallbackSlot<Int>()
        #expect(!slot.isSet)
        #expect(!slot(1))
        let sum = Atomic<Int>(0)
        slot.set { sum.add($0, ordering: .relaxed) }
        #expect(slot.isSet)
        #expect(slot(2))
        slot.set { sum.add($0 * 100, ordering: .relaxed) }
        #expect(slot(3))
        #expect(sum.load(ordering: .relaxed) == 302)
    }

    /// The point of the type: calls do not wrap the stored closure again each time (see its documentation), so a
    /// million calls neither take quadratic time nor overflow the stack.
    @Test func aMillionCallsCallTheSameClosure() {
        let slot = CallbackSlot<[UInt8]>()
        let calls = Atomic<Int>(0)
        slot.set { _ in calls.add(1, ordering: .relaxed) }
        for _ in 0..<1_000_000 { slot([1]) }
        #expect(calls.load(ordering: .relaxed) == 1_000_000)
    }
}
