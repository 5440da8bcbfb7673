// `import Kiln` brings in every layer of the library.
@_exported import KilnDevice
@_exported import KilnKernels
@_exported import KilnTensor
