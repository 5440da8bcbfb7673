import KilnDevice
import KilnKernels
import KilnTestSupport
import Testing

@Suite("Basic kernels")
struct BasicKernelTests {
    @Test("the kernel library is built once per device")
    func sharedLibrary() throws {
        let device = try TestDevice.get()
        #expect(try KernelLibrary.shared(for: device) === KernelLibrary.shared(for: device))
    }
}
