/* config_control.c: the config's "control" section: the socket, who may use it, clients per user. */
#include "config_internal.h"

#include "strutil.h"

#include <grp.h>
#include <pwd.h>
#include <string.h>

/* control.allow, control.read (`key`): "user:NAME", "group:NAME", "uid:N" or "gid:N". */
static void parse_allow(struct cfg_ctx *x, const cJSON *v, const char *key, struct cfg_allow *al) {
        const cJSON *a;
        size_t i = 0;

        if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > CFG_MAX_ALLOW) {
                cfg__problem(x, "%s: must be an array of at most %d entries", key, CFG_MAX_ALLOW);
                return;
        }
        cJSON_ArrayForEach(a, v) {
                const char *s = cJSON_IsString(a) ? a->valuestring : "";
                bool group = !strncmp(s, "group:", 6) || !strncmp(s, "gid:", 4);
                const char *arg = strchr(s, ':') ? strchr(s, ':') + 1 : "";
                uint64_t id = 0;
                bool ok = true;

                if (!strncmp(s, "uid:", 4) || !strncmp(s, "gid:", 4)) {
                        ok = plat_parse_u64(arg, strlen(arg), &id) >= 0 && id < UINT32_MAX;
                        if (!ok)
                                cfg__problem(x, "%s[%zu]: \"%s\" is not a numeric id", key, i, s);
                } else if (!strncmp(s, "user:", 5) && *arg && strlen(arg) < 256) {
                        struct passwd *pw = getpwnam(arg);

                        if (!pw) {
                                cfg__problem(x, "%s[%zu]: no user \"%s\" on this host", key, i, arg);
                                ok = false;
                        } else
                                id = pw->pw_uid;
                } else if (!strncmp(s, "group:", 6) && *arg && strlen(arg) < 256) {
                        struct group *gr = getgrnam(arg);

                        if (!gr) {
                                cfg__problem(x, "%s[%zu]: no group \"%s\" on this host", key, i, arg);
                                ok = false;
                        } else
                                id = gr->gr_gid;
                } else {
                        cfg__problem(
                                x, "%s[%zu]: must be \"user:NAME\", \"group:NAME\", \"uid:N\" or \"gid:N\"",
                                key, i);
                        ok = false;
                }
                if (ok && group)
                        al->gids[al->n_gids++] = (uint32_t)id;
                else if (ok)
                        al->uids[al->n_uids++] = (uint32_t)id;
                i++;
        }
}

void cfg__parse_control(struct cfg_ctx *x, const cJSON *root, struct cfg *c) {
        const cJSON *sect = cfg__get_object(x, root, "control", false), *allow, *read;

        if (!sect)
                return;
        allow = cJSON_GetObjectItemCaseSensitive(sect, "allow");
        read = cJSON_GetObjectItemCaseSensitive(sect, "read");
        cfg__check_keys(x, sect, "control",
                        (const char *const[]){ "socket", "allow", "read", "clients_per_user", NULL });
        cfg__get_string(x, sect, "socket", "control.socket", false, cfg__check_abs_path, &c->control_socket);
        cfg__get_uint(x, sect, "clients_per_user", "control.clients_per_user", 1, CFG_CLIENTS_PER_USER_MAX,
                      &c->control_clients_per_user);
        if (strlen(c->control_socket) >= 108)
                cfg__problem(x, "control.socket: longer than a Unix socket path may be (107 bytes)");
        if (allow)
                parse_allow(x, allow, "control.allow", &c->control_allow);
        c->control_read_set = read != NULL;
        if (read)
                parse_allow(x, read, "control.read", &c->control_read);
}
