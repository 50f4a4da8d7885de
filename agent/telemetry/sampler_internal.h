/* sampler_internal.h: what sampler.c and sampler_gpu.c share, and nobody else. */
#pragma once

#include "sampler.h"

/* Takes the GPU worker's ended sample into h and asks for the next; never waits. */
void sampler__tick_gpus(struct sampler *s, struct host_sample *h);
/* Frees the worker (abandoning it when stuck) and the GPU arrays. */
void sampler__close_gpus(struct sampler *s);
