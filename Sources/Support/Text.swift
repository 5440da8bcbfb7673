extension String {
    /// The string padded on the left with `pad` to `width` characters (unchanged when longer), for
    /// right-aligned table columns: `"42".leftPadded(5)` is `"   42"`.
    public func leftPadded(_ width: Int, with pad: Character = " ") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}

extension Float {
    /// The `Double` whose shortest decimal form is this float's: `Float(0.001).decimalDouble` is
    /// 0.001, where `Double(Float(0.001))` is 0.0010000000474974513. For reports, so a float
    /// setting such as a learning rate reads as it was given.
    public var decimalDouble: Double {
        isFinite ? Double(description) ?? Double(self) : Double(self)
    }
}
