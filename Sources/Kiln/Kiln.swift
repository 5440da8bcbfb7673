// `import Kiln` brings in every layer of the library.
@_exported import KilnSupport
@_exported import KilnDevice
@_exported import KilnKernels
@_exported import KilnTensor
@_exported import KilnLayers
@_exported import KilnTraining
@_exported import KilnTuning
