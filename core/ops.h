// Every op of the engine, for code outside core that just wants "the ops".
#pragma once

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/ops/elementwise.h"
#include "core/ops/linalg.h"
#include "core/ops/reduce.h"
#include "core/ops/view.h"
#include "core/random.h"
#include "core/tensor.h"
