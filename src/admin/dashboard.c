/*
 * The dashboard page, embedded in the binary: src/admin/dashboard.html is
 * assembled in as it is (.incbin), so the page is edited as plain HTML and
 * the binary needs nothing at run time: no file, no external asset (it must
 * work in an air-gapped DMZ). The Makefile names the .html as a
 * prerequisite of this object, so editing the page rebuilds it.
 */
#include "admin/admin_int.h"

__asm__(".section .rodata\n"
        ".global dashboard_html\n"
        ".type dashboard_html, @object\n"
        ".balign 16\n"
        "dashboard_html:\n"
        ".incbin \"src/admin/dashboard.html\"\n"
        ".byte 0\n"
        "dashboard_html_end:\n"
        ".global dashboard_html_len\n"
        ".type dashboard_html_len, @object\n"
        ".balign 4\n"
        "dashboard_html_len:\n"
        ".int dashboard_html_end - dashboard_html - 1\n"
        ".section .note.GNU-stack,\"\",@progbits\n"
        ".text\n");
