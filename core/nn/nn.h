// Every nn layer, for code outside core that just wants "the layers".
#pragma once

#include "core/nn/activation.h"
#include "core/nn/attention.h"
#include "core/nn/container.h"
#include "core/nn/conv.h"
#include "core/nn/embedding.h"
#include "core/nn/init.h"
#include "core/nn/linear.h"
#include "core/nn/module.h"
#include "core/nn/norm.h"
