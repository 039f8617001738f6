# `scripts/package.sh BUILD_DIR` builds the Debian package: resmgr_<version>_<arch>.deb and its
# -dbgsym .ddeb, checked with lintian. Configure with -DCMAKE_INSTALL_PREFIX=/usr (so the policy
# file lands in /etc) and Debian's hardening flags (package.sh does both).
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME resmgr)
set(CPACK_PACKAGE_VENDOR "resmgr developers")
set(CPACK_PACKAGE_CONTACT "resmgr developers <resmgr-devel@lists.resmgr.org>")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1) # upstream 0.1.0, first Debian revision: 0.1.0-1
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/resmgr/resmgr")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# libcurl4: resmgrd opens it with dlopen only when a cluster is configured (agent/cluster/
# curl_library.hpp), so shlibdeps cannot see it. Depends, not Recommends: an install without
# recommends would otherwise give a cluster node that cannot start. A node without a cluster
# still maps none of it.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "init-system-helpers (>= 1.54~), libcurl4")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "cgroup v2 enforcement agent for parallel development workflows")
# Extended description (CPack puts the summary above it and indents each line).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "resmgrd keeps a machine that runs many development workflows at once (parallel
coding agents, builds, test suites) from being overloaded: every allocation is
a cgroup the kernel enforces (CPU, memory, tasks), files held exclusively by
one workflow are guarded on open by fanotify and BPF LSM, and the node is
watched through /proc, PSI and eBPF, with events in the journal.
.
It remembers every workflow run and sizes the next ones from what they really
used (optimize, scale, balance, tune). resmgr and resmgr-run are its clients.")
# Stripping: CPackDeb itself splits each binary's debug info into resmgr-dbgsym_*.ddeb
# (/usr/lib/debug/.build-id/..., with a .gnu_debuglink) and strips the binary with
# --strip-unneeded. CPACK_STRIP_FILES must stay OFF for that: it strips before CPackDeb looks, so
# CPackDeb finds no unstripped file and makes no -dbgsym package. CMake 3.25 writes the .ddeb's
# md5sums with absolute build paths and gives it no /usr/share/doc: package.sh repairs both.
set(CPACK_STRIP_FILES OFF)
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/conffiles ${CMAKE_CURRENT_LIST_DIR}/postinst ${CMAKE_CURRENT_LIST_DIR}/prerm
    ${CMAKE_CURRENT_LIST_DIR}/postrm)
include(CPack)
