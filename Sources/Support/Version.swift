/// Kiln's version: printed by `kiln --version`, and part of every program-cache key.
public let kilnVersion = "0.4.3"
