/// Every kernel of kernels.cl, by the name it has there. Launchers name kernels only through this
/// list, and a test checks it against the kernels of the built program on both paths, and that
/// each entry has a launcher in this module.
///
/// Adding a kernel: write it in kernels.cl, add its case here, and write one launcher for it.
public enum KernelName: String, CaseIterable, Sendable {
    // Element-wise (ew_*) and activations (act_*)
    case ewAxpy = "ew_axpy"
    case ewBinary = "ew_binary"
    case ewBinaryScalar = "ew_binary_scalar"
    case ewBinaryND = "ew_binary_nd"
    case ewWhere = "ew_where"
    case ewUnary = "ew_unary"
    case actForward = "act_forward"
    case actBackward = "act_backward"

    // Reductions
    case reduceSumRows = "reduce_sum_rows"
    case reduceSumCols = "reduce_sum_cols"
    case reduceSumAll = "reduce_sum_all"
    case reduceMaxRows = "reduce_max_rows"
    case reduceMaxCols = "reduce_max_cols"
    case reduceMaxAll = "reduce_max_all"
    case reduceArgmaxRows = "reduce_argmax_rows"
    case reduceArgmaxCols = "reduce_argmax_cols"
    case reduceArgmaxAll = "reduce_argmax_all"
    case reduceSumI32All = "reduce_sum_i32_all"
    case reduceLossStep = "reduce_loss_step"

    // Softmax and cross-entropy
    case softmaxRows = "softmax_rows"
    case logSoftmaxRows = "log_softmax_rows"
    case softmaxBackwardRows = "softmax_backward_rows"
    case logSoftmaxBackwardRows = "log_softmax_backward_rows"
    case xentFused = "xent_fused"
    case xentCountCorrect = "xent_count_correct"

    // Data movement
    case copyND = "copy_nd"
    case transpose2D = "transpose_2d"
    case gatherRows = "gather_rows"
    case gatherI32 = "gather_i32"
    case oneHot = "one_hot"

    // Batch normalization
    case bnPartialStats = "bn_partial_stats"
    case bnFinalizeStats = "bn_finalize_stats"
    case bnEvalCoefficients = "bn_eval_coefficients"
    case bnApply = "bn_apply"
    case bnBackwardPartial = "bn_backward_partial"
    case bnBackwardFinalize = "bn_backward_finalize"
    case bnBackwardDx = "bn_backward_dx"

    // Random numbers and dropout
    case philoxBits = "philox_bits"
    case randUniform = "rand_uniform"
    case randNormal = "rand_normal"
    case dropout = "dropout"
    case dropoutGrouped = "dropout_grouped"

    // Optimizers
    case sgdStep = "sgd_step"
    case adamStep = "adam_step"
    case rmspropStep = "rmsprop_step"

    // Matrix products
    case matmulNN = "matmul_nn"
    case matmulNT = "matmul_nt"
    case matmulTN = "matmul_tn"
    case matmulTT = "matmul_tt"
    case matmulSmallNN = "matmul_small_nn"
    case matmulSmallNT = "matmul_small_nt"
    case matmulNarrowNT = "matmul_narrow_nt"
    case matmulSmallTN = "matmul_small_tn"
    case matmulSmallTT = "matmul_small_tt"
    case matmulSumNN = "matmul_sum_nn"
    case matmulSumTN = "matmul_sum_tn"
    case matmulSumTT = "matmul_sum_tt"
    case matmulPack = "matmul_pack"
    case matmulPacked = "matmul_packed"
    case linearActBackward = "linear_act_backward"

    // Convolution, pooling and augmentation over NCHW
    case convIm2col = "conv_im2col"
    case convCol2im = "conv_col2im"
    case convForwardStaged = "conv_forward_staged"
    case convWeightFlip = "conv_weight_flip"
    case convWeightGradStaged = "conv_weight_grad_staged"
    case poolMax = "pool_max"
    case poolMaxBackward = "pool_max_backward"
    case poolMax2 = "pool_max2"
    case poolMax2Backward = "pool_max2_backward"
    case poolMax2BnBackwardPartial = "pool_max2_bn_backward_partial"
    case poolMax2BnBackwardDx = "pool_max2_bn_backward_dx"
    case poolAvg = "pool_avg"
    case poolAvgBackward = "pool_avg_backward"
    case augmentCropFlip = "augment_crop_flip"

    /// Whether the program built for `kind` has this kernel (the small, summed and packed matmul
    /// tiles and the staged convolutions are CPU-only).
    public func isBuilt(for kind: DeviceKind) -> Bool {
        switch self {
        case .matmulSmallNN, .matmulSmallNT, .matmulNarrowNT, .matmulSmallTN, .matmulSmallTT,
             .matmulSumNN, .matmulSumTN, .matmulSumTT, .matmulPack, .matmulPacked,
             .convForwardStaged, .convWeightGradStaged: kind == .cpu
        default: true
        }
    }

    /// The matmul kernel for a pair of transposes: small tiles, or large ones, K-blocked for a
    /// summed batch (`summed`; the nt kernel has no blocked form).
    public static func matmul(transposeA: Bool, transposeB: Bool, small: Bool, summed: Bool = false) -> KernelName {
        switch (transposeA, transposeB, small, summed && !small) {
        case (false, false, false, false): .matmulNN
        case (false, true, false, _): .matmulNT
        case (true, false, false, false): .matmulTN
        case (true, true, false, false): .matmulTT
        case (false, false, false, true): .matmulSumNN
        case (true, false, false, true): .matmulSumTN
        case (true, true, false, true): .matmulSumTT
        case (false, false, true, _): .matmulSmallNN
        case (false, true, true, _): .matmulSmallNT
        case (true, false, true, _): .matmulSmallTN
        case (true, true, true, _): .matmulSmallTT
        }
    }
}
