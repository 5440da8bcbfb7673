/// The product of `values`, or nil when it overflows `Int` (sizes from files and flags are
/// multiplied through this, never with a bare `*`).
public func checkedProduct(_ values: some Sequence<Int>) -> Int? {
    var product = 1
    for value in values {
        let (next, overflow) = product.multipliedReportingOverflow(by: value)
        if overflow { return nil }
        product = next
    }
    return product
}
