/* test_authz.c: who may change sessions on the control socket, and who may read who uses them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "authz.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Ids nobody in the test is: not root, and not whoever runs it (the agent's own user). */
#define NOBODY_UID 4242
#define OTHER_GID 4343

static struct plat_peer peer(uid_t uid, gid_t gid, const gid_t *groups, size_t n) {
        return (struct plat_peer){ .pid = 1, .uid = uid, .gid = gid, .groups = groups, .n_groups = n };
}

static void test_change_needs_root_the_agents_user_or_control_allow(void **state) {
        static const gid_t ops[] = { 20, 600 };
        struct cfg c = { .control_allow = { .n_uids = 1, .uids = { 800 }, .n_gids = 1, .gids = { 600 } } };
        struct plat_peer p;

        (void)state;
        assert_true(geteuid() != NOBODY_UID);
        p = peer(0, 0, NULL, 0);
        assert_true(authz_may_change(&c, &p));
        p = peer(geteuid(), OTHER_GID, NULL, 0);
        assert_true(authz_may_change(&c, &p));
        p = peer(800, OTHER_GID, NULL, 0);
        assert_true(authz_may_change(&c, &p));
        p = peer(NOBODY_UID, 600, NULL, 0); /* primary group */
        assert_true(authz_may_change(&c, &p));
        p = peer(NOBODY_UID, OTHER_GID, ops, 2); /* supplementary group */
        assert_true(authz_may_change(&c, &p));
        p = peer(NOBODY_UID, OTHER_GID, ops, 1);
        assert_false(authz_may_change(&c, &p));
        assert_false(authz_may_change(&c, NULL));
}

static void test_without_control_read_every_peer_reads_everything(void **state) {
        struct cfg c = { 0 };
        struct plat_peer p = peer(NOBODY_UID, OTHER_GID, NULL, 0);

        (void)state;
        assert_true(authz_may_read_personal(&c, &p));
}

static void test_with_control_read_only_listed_peers_read_who_uses_a_slot(void **state) {
        static const gid_t readers[] = { 20, 500 };
        struct cfg c = { .control_allow = { .n_uids = 1, .uids = { 800 } },
                         .control_read = { .n_uids = 1, .uids = { 700 }, .n_gids = 1, .gids = { 500 } },
                         .control_read_set = true };
        struct plat_peer p;

        (void)state;
        p = peer(NOBODY_UID, OTHER_GID, NULL, 0);
        assert_false(authz_may_read_personal(&c, &p));
        p = peer(NOBODY_UID, OTHER_GID, readers, 1);
        assert_false(authz_may_read_personal(&c, &p));
        p = peer(NOBODY_UID, OTHER_GID, readers, 2); /* supplementary group in control.read */
        assert_true(authz_may_read_personal(&c, &p));
        p = peer(NOBODY_UID, 500, NULL, 0); /* primary group */
        assert_true(authz_may_read_personal(&c, &p));
        p = peer(700, OTHER_GID, NULL, 0);
        assert_true(authz_may_read_personal(&c, &p));
        p = peer(800, OTHER_GID, NULL, 0); /* control.allow reads too */
        assert_true(authz_may_read_personal(&c, &p));
        p = peer(0, 0, NULL, 0);
        assert_true(authz_may_read_personal(&c, &p));
        assert_false(authz_may_read_personal(&c, NULL));
        /* An empty control.read: root, the agent's user and control.allow only. */
        c.control_read = (struct cfg_allow){ 0 };
        p = peer(700, OTHER_GID, NULL, 0);
        assert_false(authz_may_read_personal(&c, &p));
        p = peer(800, OTHER_GID, NULL, 0);
        assert_true(authz_may_read_personal(&c, &p));
}

static void test_redaction_takes_users_and_client_addresses_out_at_any_depth(void **state) {
        cJSON *res = cJSON_Parse(
                "{\"status\":{\"node\":\"n1\",\"slots\":[{\"id\":\"s0\",\"state\":\"active\",\"user\":"
                "\"alice\","
                "\"session\":\"abc\",\"client_ip\":\"192.0.2.10\",\"viewers\":[{\"user\":\"bob\",\"role\":"
                "\"viewer\"}]},{\"id\":\"s1\",\"state\":\"free\",\"viewers\":[]}]}}");
        char *s;

        (void)state;
        authz_redact(res);
        s = cJSON_PrintUnformatted(res);
        assert_string_equal(s, "{\"status\":{\"node\":\"n1\",\"slots\":[{\"id\":\"s0\",\"state\":\"active\","
                               "\"session\":\"abc\",\"viewers\":[{\"role\":\"viewer\"}]},{\"id\":\"s1\","
                               "\"state\":\"free\",\"viewers\":[]}]},\"redacted\":true}");
        free(s);
        cJSON_Delete(res);
        authz_redact(NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_change_needs_root_the_agents_user_or_control_allow),
                cmocka_unit_test(test_without_control_read_every_peer_reads_everything),
                cmocka_unit_test(test_with_control_read_only_listed_peers_read_who_uses_a_slot),
                cmocka_unit_test(test_redaction_takes_users_and_client_addresses_out_at_any_depth),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
