# The key proxy image: Node 24 runs the TypeScript sources directly (type stripping), so the image
# holds the sources of the proxy and the two libraries it uses, and their production dependencies.
FROM node:24-bookworm-slim
WORKDIR /opt/arca
# pkcs11js builds a native addon; SoftHSM2-compatible modules are mounted by the operator
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# The whole workspace is copied (see .dockerignore) because npm ci checks the lock file against
# every workspace; only the key proxy's production dependencies are installed.
COPY . .
RUN npm ci --omit=dev --workspace @arca/key-proxy --include-workspace-root=false --no-audit --no-fund
RUN mkdir -p /var/lib/arca-key-proxy && chown node:node /var/lib/arca-key-proxy
USER node
EXPOSE 8700
ENTRYPOINT ["node", "apps/key-proxy/bin/arca-key-proxy.ts"]
CMD ["serve"]
