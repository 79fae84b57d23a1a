// Every op of the engine, for code outside core that just wants "the ops".
#pragma once

#include "core/autograd/grad_mode.h"
#include "core/autograd/node.h"
#include "core/ops/attention.h"
#include "core/ops/conv.h"
#include "core/ops/elementwise.h"
#include "core/ops/embedding.h"
#include "core/ops/index.h"
#include "core/ops/linalg.h"
#include "core/ops/loss.h"
#include "core/ops/norm.h"
#include "core/ops/pool.h"
#include "core/ops/reduce.h"
#include "core/ops/softmax.h"
#include "core/ops/view.h"
#include "core/random.h"
#include "core/tensor.h"
