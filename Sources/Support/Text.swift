extension String {
    /// The string padded on the left with `pad` to `width` characters (unchanged when longer), for
    /// right-aligned table columns: `"42".leftPadded(5)` is `"   42"`.
    public func leftPadded(_ width: Int, with pad: Character = " ") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
