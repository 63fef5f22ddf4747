// Ops of engine/src/ops_reduce.cpp: values against references, vector-Jacobian products against
// finite differences, errors naming the node.
#include <catch2/catch.hpp>

#include "engine_test_util.h"
