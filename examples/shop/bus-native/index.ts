/** The shop's agents ported to the bus with the SDK (src/sdk). */
export { startBusPricing, QUOTE_TOPIC, type BusPricingOptions } from './pricing.js';
export { startBusInventory, RESERVE_TOPIC, RESERVED_FACT_TOPIC, type BusInventoryOptions } from './inventory.js';
export { startBusFraud, CHECK_TOPIC, type BusFraudOptions } from './fraud.js';
export type { BusAgent, BusNativeOptions, CallData } from './call.js';
export { startBusCheckout, checkoutTopic, type BusCheckoutOptions } from './checkout.js';
