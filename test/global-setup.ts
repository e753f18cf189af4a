// Placeholder: replaced by the real-services setup (test/services.sh).
export default function setup(): void {}
