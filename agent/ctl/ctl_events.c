/* ctl_events.c: `render-agentctl events [--since S|TIME] [--follow]`: the agent's recent events, live. */
#include "cleanup.h"
#include "ctl_cmds.h"
#include "ctl_conn.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "TS EVENT key=value ...": the members every event has (v, type, node, region) are left out. */
static void print_event(const cJSON *e) {
        static const char *const common[] = { "v", "type", "event", "node", "region", "ts" };
        const cJSON *m;

        printf("%s %-24s", ctl_str(e, "ts"), ctl_str(e, "event"));
        cJSON_ArrayForEach(m, e) {
                bool skip = false;

                for (size_t i = 0; i < ELEMENTSOF(common); i++)
                        skip |= !strcmp(m->string, common[i]);
                if (skip)
                        continue;
                if (cJSON_IsString(m)) {
                        printf(" %s=%s", m->string, m->valuestring);
                } else {
                        _cleanup_free_ char *v = cJSON_PrintUnformatted(m);

                        printf(" %s=%s", m->string, v ? v : "?");
                }
        }
        printf("\n");
}

static void print_line(const cJSON *e, bool json) {
        if (json) {
                _cleanup_free_ char *s = cJSON_PrintUnformatted(e);

                printf("%s\n", s ? s : "{}");
        } else {
                print_event(e);
        }
        fflush(stdout);
}

/* The request, or NULL after a usage error (said on stderr). */
static cJSON *events_request(int argc, char **argv, bool *ret_follow) {
        static const struct option opts[] = {
                { "follow", no_argument, NULL, 'f' },
                { "since", required_argument, NULL, 'S' },
                {},
        };
        const char *since = NULL;
        bool follow = false;
        cJSON *req;
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "fS:", opts, NULL)) >= 0) {
                if (c == 'f')
                        follow = true;
                else if (c == 'S')
                        since = optarg;
                else
                        return NULL;
        }
        if (optind < argc) {
                fprintf(stderr, "render-agentctl: events: unexpected argument \"%s\"\n", argv[optind]);
                return NULL;
        }
        req = cJSON_CreateObject();
        cJSON_AddNumberToObject(req, "id", 1);
        cJSON_AddStringToObject(req, "op", "events");
        cJSON_AddBoolToObject(req, "follow", follow);
        if (since && since[0] && strspn(since, "0123456789.") == strlen(since))
                cJSON_AddNumberToObject(req, "since", strtod(since, NULL));
        else if (since)
                cJSON_AddStringToObject(req, "since", since); /* the agent says what is wrong with it */
        *ret_follow = follow;
        return req;
}

int ctl_events(const char *socket, bool json, int argc, char **argv) {
        _cleanup_free_ char *text = NULL, *line = NULL;
        const cJSON *e, *err;
        struct ctl_conn conn;
        bool follow = false;
        cJSON *req = events_request(argc, argv, &follow), *reply;
        int r;

        if (!req) {
                fprintf(stderr, "Usage: render-agentctl events [--since SECONDS|TIME] [--follow]\n");
                return CTL_EXIT_USAGE;
        }
        text = cJSON_PrintUnformatted(req);
        cJSON_Delete(req);
        r = text ? ctl_conn_open(socket, &conn) : -ENOMEM;
        if (r < 0) {
                fprintf(stderr, "render-agentctl: cannot talk to render-agent on %s: %s\n", socket,
                        strerror(-r));
                return CTL_EXIT_UNREACHABLE;
        }
        r = ctl_conn_send(&conn, text);
        if (r >= 0)
                r = ctl_conn_read_line(&conn, 10000, &line);
        reply = r >= 0 ? cJSON_Parse(line) : NULL;
        if (!reply) {
                fprintf(stderr, "render-agentctl: no reply from render-agent on %s: %s\n", socket,
                        r < 0 ? strerror(-r) : "not JSON");
                ctl_conn_close(&conn);
                return CTL_EXIT_UNREACHABLE;
        }
        err = cJSON_GetObjectItemCaseSensitive(reply, "error");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "ok"))) {
                fprintf(stderr, "render-agentctl: %s: %s\n", ctl_str(err, "code"), ctl_str(err, "message"));
                cJSON_Delete(reply);
                ctl_conn_close(&conn);
                return CTL_EXIT_AGENT_ERROR;
        }
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(reply, "events")) print_line(e, json);
        cJSON_Delete(reply);
        r = 0;
        while (follow) {
                _cleanup_free_ char *ev = NULL;
                cJSON *o;

                r = ctl_conn_read_line(&conn, -1, &ev);
                if (r < 0) {
                        fprintf(stderr, "render-agentctl: events: the agent closed the stream: %s\n",
                                strerror(-r));
                        r = CTL_EXIT_UNREACHABLE;
                        break;
                }
                o = cJSON_Parse(ev);
                if (o && !strcmp(ctl_str(o, "type"), "dropped")) {
                        fprintf(stderr, "render-agentctl: %s\n", ctl_str(o, "message"));
                        cJSON_Delete(o);
                        r = CTL_EXIT_AGENT_ERROR;
                        break;
                }
                if (o)
                        print_line(o, json);
                cJSON_Delete(o);
        }
        ctl_conn_close(&conn);
        return r;
}
