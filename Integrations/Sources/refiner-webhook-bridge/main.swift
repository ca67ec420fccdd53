import RefinerWebhookBridge

await RefinerWebhookBridge.main()
