# `cpack -G DEB` in a build directory makes resmgr_<version>_amd64.deb.
set(CPACK_PACKAGE_NAME resmgr)
set(CPACK_PACKAGE_VENDOR "resmgr")
set(CPACK_PACKAGE_CONTACT "resmgr maintainers <resmgr@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "cgroup v2 enforcement agent for parallel development workflows")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_GENERATOR DEB)
include(CPack)
