# syntax=docker/dockerfile:1
#
# One image for every changegate process: the API (default CMD), the Temporal worker and the migrations
# one-shot differ only in their command (see docker-compose.yml).

# Node 24 LTS at an exact release, the same Node the project develops and tests on.
ARG NODE_IMAGE=node:24.22.3-bookworm-slim

# ---------------------------------------------------------------------------------------------------------------
# build: install everything (tsc and types are dev dependencies), compile, then drop dev dependencies so the
# runtime stage can copy a production-only node_modules.
# ---------------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app

# Dependency layer first: it is rebuilt only when the manifest or the lockfile changes. `npm ci` installs exactly the
# lockfile and fails if it disagrees with package.json, where `npm install` would quietly resolve something else.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund

COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY config ./config
# The dashboard's sources: npm run build makes dist/dashboard from them with Vite (the API serves it).
COPY dashboard ./dashboard
# npm run build runs tsc through scripts/with-node.sh (the image's Node is already a supported one).
COPY scripts/with-node.sh ./scripts/with-node.sh
COPY scripts/lib/node-version.sh ./scripts/lib/node-version.sh
# tsc -p tsconfig.build.json -> dist/src/api-main.js, dist/src/worker-main.js,
# dist/src/persistence/migrate-main.js, dist/workflows/**, dist/activities/**
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------------------------------------------
# runtime: compiled JS, production node_modules, package.json and config/. Files stay owned by root and are only
# readable by the `node` user the process runs as, so a compromised process cannot rewrite its own code.
# ---------------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app

COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/config ./config

USER node
EXPOSE 3000
CMD ["node", "dist/src/api-main.js"]
