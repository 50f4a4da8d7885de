/* config_internal.h: what config.c and its section parsers (config_*.c) share; not for other modules.
 *
 * Every reader takes the parse context and reports what is wrong with cfg__problem(), naming the
 * full dotted key; none stops the parse, so one run lists every problem of the file. */
#pragma once

#include "config.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#define CFG_MAX_STRING 4096

struct cfg_ctx {
        const char *path;
        char *dir; /* the config file's directory, for relative file names */
        struct cfg_problems *problems;
        bool oom;
};

/* Appends "FILE: message" to the problem list (at most CFG_MAX_PROBLEMS; sets oom on ENOMEM). */
void cfg__problem(struct cfg_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "an object", "a string"...: what a JSON value is, for messages. */
const char *cfg__type_name(const cJSON *v);

/* Unknown and duplicate keys are errors: a typo must not fall back to a default unseen. */
void cfg__check_keys(struct cfg_ctx *x, const cJSON *obj, const char *where, const char *const *allowed);

/* The object member `key` of parent (borrowed), or NULL when absent or not an object (the
 * latter, and a missing required one, reported). */
const cJSON *cfg__get_object(struct cfg_ctx *x, const cJSON *parent, const char *key, bool required);

/* A value check: true when s is acceptable; else *why says what it must be. */
typedef bool (*cfg__string_check_fn)(const char *s, const char **why);

/* Reads a string member into *out (replacing the default; caller frees). `name` is the full
 * dotted key. */
void cfg__get_string(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, bool required,
                     cfg__string_check_fn check, char **out);

/* An integer in [min, max] into *out; left alone when absent or wrong (the latter reported). */
void cfg__get_uint(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, unsigned min,
                   unsigned max, unsigned *out);

/* A number in [min, max]; false when absent or wrong (the latter reported). */
bool cfg__get_number(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, double min,
                     double max, double *out);

/* A file name, resolved against the config's directory into *out, that must open as a regular
 * file; its identity is folded into *stamp so a reload sees a replaced file. */
void cfg__get_file(struct cfg_ctx *x, const cJSON *obj, const char *key, const char *name, char **out,
                   uint64_t *stamp);

bool cfg__check_name(const char *s, const char **why);
bool cfg__check_topic_prefix(const char *s, const char **why);
bool cfg__check_host(const char *s, const char **why);
bool cfg__check_iface(const char *s, const char **why);
bool cfg__check_cgroup(const char *s, const char **why);
bool cfg__check_project(const char *s, const char **why);
bool cfg__check_abs_path(const char *s, const char **why);

/* The sections, each in its config_<section>.c: defaults stay unless the file overrides them. */
void cfg__parse_mqtt(struct cfg_ctx *x, const cJSON *root, struct cfg *c);
void cfg__parse_gpu(struct cfg_ctx *x, const cJSON *root, struct cfg *c);
void cfg__parse_scales(struct cfg_ctx *x, const cJSON *root, struct cfg *c);
void cfg__parse_control(struct cfg_ctx *x, const cJSON *root, struct cfg *c);
void cfg__parse_sessions(struct cfg_ctx *x, const cJSON *root, struct cfg *c);
void cfg__parse_metering(struct cfg_ctx *x, const cJSON *root, struct cfg *c);
void cfg__parse_slots(struct cfg_ctx *x, const cJSON *root, struct cfg *c);
