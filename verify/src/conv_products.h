#pragma once
// Products with a layer that is exactly a convolution (ConvGeometry, network.h), as dense GEMMs
// over im2col columns instead of scalar loops over the compressed rows. Each output is the same
// sum of the same products W_ij x_j as the matrix form (zero taps add exact zeros), so every
// rounding allowance written for "a sum of at most n products, any order" covers it unchanged.
#include <cstdint>
#include <memory>

#include "mlaudit/verify/network.h"

namespace mlaudit::verify::detail {

/// y_r = W x_r (|W| x_r when `absolute`) for `rows` row-major rows: x [rows, C H W], y [rows, M OH OW].
void conv_forward(const ConvGeometry& g, const double* x, int64_t rows, double* y, bool absolute = false);

/// x_r = W^T y_r for `rows` row-major rows: y [rows, M OH OW], x [rows, C H W] (overwritten).
void conv_transpose(const ConvGeometry& g, const double* y, int64_t rows, double* x);

/// `geom` (shape fields and in_offset set, kernel empty) with its kernel read from L's W, when W's rows
/// [0, M OH OW) on inputs [in_offset, in_offset + C H W) are exactly that convolution (every in-bounds
/// tap equal across positions, nothing else non-zero there); W's other non-zeros become the rest rows.
/// Else nullptr.
std::shared_ptr<const ConvGeometry> match_convolution(ConvGeometry geom, const AffineLayer& L);

/// y_r = W x_r (|W| x_r when `absolute`) for a layer with L.conv: x [rows, L.in], y [rows, L.out].
void layer_conv_forward(const AffineLayer& L, const double* x, int64_t rows, double* y, bool absolute = false);

/// x_r = W^T y_r for a layer with L.conv: y [rows, L.out], x [rows, L.in] (overwritten).
void layer_conv_transpose(const AffineLayer& L, const double* y, int64_t rows, double* x);

}  // namespace mlaudit::verify::detail
